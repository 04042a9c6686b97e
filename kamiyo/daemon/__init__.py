"""The long-running process: per-chain followers (this slice), later the supervisor and systemd integration."""
