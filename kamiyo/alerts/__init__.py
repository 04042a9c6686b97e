"""Alert delivery: routing, the outbox, one module per channel, and the SSRF guard every outgoing request uses."""
