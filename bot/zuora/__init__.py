"""Zuora test-environment API client: typed calls, authentication, retries and errors (knows nothing of Slack)."""
