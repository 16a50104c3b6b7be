"""dlx's config tree: the YAML options Hydra composes a run from. This folder travels inside the
installed package as `dlx.conf` (pyproject.toml's package-dir), where dlx finds it with
importlib.resources (dlx/config/schemas.py)."""
