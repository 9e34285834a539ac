"""One client per module, each run in its own process: ``python -m bench.clients.<name> --url ...``
prints one JSON result line (see ``meter.Meter.result``)."""
