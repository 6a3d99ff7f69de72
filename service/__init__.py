"""noteloom's command line and HTTP API."""
