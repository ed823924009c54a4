def _key(version):
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:  # "1.2.0" sorts equal to "1.2"
        parts.pop()
    return tuple(parts)


def sort_versions(versions):
    """Dotted versions in ascending numeric order; stable, input untouched."""
    return sorted(versions, key=_key)
