"""framewire's lab, beside the product and never loaded by its services: `framewire bench` (HTTP
against Redis, capacity, the article's design) and the harness the tests share (stack, readers)."""
