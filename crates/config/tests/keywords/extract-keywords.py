#!/usr/bin/env python3
"""Lists the keywords keepalived installs for the VRRP side, one `BLOCK KEYWORD` per line.

Usage: extract-keywords.py KEEPALIVED_GIT_DIR TAG > keepalived-2.2.7.txt

Reads global_parser.c, vrrp_parser.c and track_file.c at TAG (every `#ifdef` branch counts:
a build may have any of them) and follows keepalived's keyword tree: `install_keyword_root`
opens a top-level keyword, `install_keyword` adds one under the current root (or under a
sublevel opened by `install_sublevel`). Top-level keywords are listed under `top`. The blocks
whose contents are free-form lines (static_ipaddress, static_routes, static_rules) have no
keywords of their own and appear only under `top`.
"""
import re
import subprocess
import sys

FILES = [
    "keepalived/core/global_parser.c",
    "keepalived/vrrp/vrrp_parser.c",
    "keepalived/trackers/track_file.c",
]
CALL = re.compile(
    r'(install_keyword_root|install_keyword|install_sublevel_end|install_sublevel)\s*\(\s*(?:"([^"]+)")?'
)


def main():
    git_dir, tag = sys.argv[1], sys.argv[2]
    seen = []
    for path in FILES:
        text = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{tag}:{path}"],
            check=True, capture_output=True, text=True,
        ).stdout
        root, stack, last = None, [], None
        for call, name in CALL.findall(text):
            if call == "install_keyword_root":
                root, stack, last = name, [], name
                entry = ("top", name)
            elif call == "install_sublevel":
                stack.append(last)
                continue
            elif call == "install_sublevel_end":
                stack.pop()
                continue
            else:
                block = stack[-1] if stack else root
                entry, last = (block, name), name
            if entry not in seen:
                seen.append(entry)
    for block, name in seen:
        print(f"{block} {name}")


main()
