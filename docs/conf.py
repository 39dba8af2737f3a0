"""Sphinx configuration of the airflow-tf-export documentation (`make docs`).

The pages are the Markdown files of this folder (read by myst-parser); the API reference is
generated from the docstrings by autodoc. The build treats every warning as an error.
"""

from __future__ import annotations

import importlib.metadata

project = "airflow-tf-export"
author = "airflow-tf-export contributors"
copyright = "airflow-tf-export contributors, Apache License 2.0"
release = importlib.metadata.version("airflow-tf-export")
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_default_options = {"members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Docstrings refer to argument types that are not documented here (Airflow's, TensorFlow's).
nitpicky = False

html_theme = "furo"
html_title = f"airflow-tf-export {release}"
