"""A local API Gateway WebSocket API for Chalice apps, with an embedded DynamoDB."""
