# Placeholder; filled by the loader layer.
