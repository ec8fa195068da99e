"""What the API and the workers share: the task protocol and scripts, the sender, the send buffer."""
