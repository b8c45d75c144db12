"""Link options for system libraries taken from their static archives."""

def static_archives(names):
    """Links lib<name>.a for each name; the group resolves references among them in any order."""
    return ["-Wl,--start-group"] + ["-l:lib%s.a" % name for name in names] + ["-Wl,--end-group"]
