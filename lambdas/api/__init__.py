"""The REST API: POST /jobs and the read side, behind API Gateway."""
