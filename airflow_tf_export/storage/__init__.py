"""One Storage protocol with a local POSIX and a GCS backend; publishing versions atomically."""
