"""HTTP layer: schemas, problem+json errors and routes. No inference logic lives here."""
