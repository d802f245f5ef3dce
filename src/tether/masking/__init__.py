"""PII masking for analytics exports."""
