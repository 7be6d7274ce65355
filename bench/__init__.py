"""`flashpoint bench`: measures the pipeline against a raw relay and a naive pipeline."""
