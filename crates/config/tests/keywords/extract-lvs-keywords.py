#!/usr/bin/env python3
"""Lists the keywords keepalived installs for the load-balancing side, one `BLOCK KEYWORD` a line.

Usage: extract-lvs-keywords.py KEEPALIVED_GIT_DIR TAG > keepalived-2.2.7-lvs.txt

Starts at check_parser.c's init_check_keywords at TAG and follows keepalived's keyword tree as
extract-keywords.py does for the VRRP side (`install_keyword_root` opens a top-level keyword,
`install_keyword` adds one under the innermost block opened by `install_sublevel`), and also
follows the calls that install keywords for it: install_checkers_keyword, each checker's
install_*_keyword, install_checker_common_keywords (its connection keywords only where called
with `true`). Every `#ifdef` branch counts. A block is named by the keyword that opens it.
"""
import re
import subprocess
import sys

FILES = [
    "keepalived/check/check_parser.c",
    "keepalived/check/check_api.c",
    "keepalived/check/check_http.c",
    "keepalived/check/check_ssl.c",
    "keepalived/check/check_tcp.c",
    "keepalived/check/check_misc.c",
    "keepalived/check/check_smtp.c",
    "keepalived/check/check_dns.c",
    "keepalived/check/check_udp.c",
    "keepalived/check/check_ping.c",
    "keepalived/check/check_bfd.c",
    "keepalived/check/check_file.c",
]
FUNC = re.compile(r'^(?:static\s+)?(?:inline\s+)?void\s*\n?\s*(\w+)\s*\(([^)]*)\)\s*\n\{\n(.*?)^\}', re.M | re.S)
STEP = re.compile(
    r'(install_keyword_root|install_keyword|install_sublevel_end|install_sublevel)\s*\(\s*(?:"([^"]+)"|(\w+))?'
    r'|\b(install_\w+_keywords?|install_http_ssl_check_keyword)\s*\(\s*(?:"([^"]+)"|(\w+))?\s*\)\s*;'
)


def main():
    git_dir, tag = sys.argv[1], sys.argv[2]
    funcs = {}
    for path in FILES:
        text = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{tag}:{path}"],
            check=True, capture_output=True, text=True,
        ).stdout
        for name, params, body in FUNC.findall(text):
            funcs[name] = (params, body)
    seen = []
    state = {"root": None, "stack": [], "last": None}

    def run(name, arg=None):
        params, body = funcs[name]
        if name == "install_checker_common_keywords" and arg == "false":
            body = re.sub(r'if \(connection_keywords\) \{.*?\n\t\}', "", body, flags=re.S)
        for call, lit, var, sub, sub_lit, sub_var in STEP.findall(body):
            if sub:
                if sub in funcs and sub not in ("install_keyword", "install_keyword_root"):
                    run(sub, sub_lit or sub_var)
                continue
            kw = lit or (arg if var else None)
            if call == "install_keyword_root":
                state.update(root=kw, stack=[], last=kw)
                entry = ("top", kw)
            elif call == "install_sublevel":
                state["stack"].append(state["last"])
                continue
            elif call == "install_sublevel_end":
                state["stack"].pop()
                continue
            else:
                block = state["stack"][-1] if state["stack"] else state["root"]
                entry = (block, kw)
                state["last"] = kw
            if entry not in seen:
                seen.append(entry)

    run("init_check_keywords")
    for block, name in seen:
        print(f"{block} {name}")


main()
