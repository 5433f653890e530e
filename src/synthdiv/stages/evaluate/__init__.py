"""The evaluate stage: the trained variants on the in-domain, shifted and out-of-domain sets, top-1 / top-5,
per-class and long-tail accuracy, with intervals (``eval/``)."""
