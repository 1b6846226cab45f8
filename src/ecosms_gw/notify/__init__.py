"""What the gateway tells others: ping calls and outgoing mail, both retried."""
