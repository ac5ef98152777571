"""Block module: being written."""
