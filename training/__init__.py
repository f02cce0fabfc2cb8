"""Fine-tuning: embed labelled assets with a bot's backbone, train a head, publish a versioned model."""
