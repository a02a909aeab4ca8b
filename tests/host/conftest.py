"""Host tests run with testinfra over SSH: --hosts=ssh://default --ssh-config=PATH --sudo."""
