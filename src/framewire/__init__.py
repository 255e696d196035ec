"""framewire: camera frames over HTTP and Redis, measured."""
