# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Parse a version string like ``'0.1.0rc1'`` into ``(0, 1, 0, 'rc1')``."""
    info = []
    for part in version_str.split('.'):
        if part.isdigit():
            info.append(int(part))
        elif 'rc' in part:
            num, rc = part.split('rc')
            info.extend([int(num), f'rc{rc}'])
    return tuple(info)


version_info = parse_version_info(__version__)
