"""The thaw-slump (RTS) inference job: config, tile list, plan and entry point."""
