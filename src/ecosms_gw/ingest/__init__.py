"""The doors messages come in by (SMTP, FTP) and the pipeline every door shares, HTTP included."""
