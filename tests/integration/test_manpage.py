#!/usr/bin/env python3
"""The built man page, minivmm(1), against the built minivmm's --help and --version (no KVM): every
option --help lists has an entry in OPTIONS and every entry there is an option --help lists; every
minivmm option the page mentions anywhere (its examples too) is one --help lists; EXIT STATUS has
exactly --help's statuses; the page's header has minivmm's version; groff formats it with every
warning on (-ww) and says nothing. The comparison is first run on a page with one option dropped
and a --help with one option added, and must find both (so this test can fail).

usage: test_manpage.py MINIVMM MANPAGE"""
import re
import shutil
import subprocess
import sys

from tests.harness import suite

OPTION_WORD = re.compile(r"(?<![\w.-])(--?[a-z][\w-]*)")
HELP_OPTION = re.compile(r"^  (--?[a-z][\w-]*)(?:, (--?[a-z][\w-]*))?(?: |$)", re.M)


def help_options(help_text):
    """The option names --help lists (its 'options:' lines), as a set."""
    body = help_text.split("\noptions:\n", 1)[1].split("\nexit status:\n", 1)[0]
    return {name for m in HELP_OPTION.finditer(body) for name in m.groups() if name}


def help_statuses(help_text):
    return re.findall(r"^  (\S+) ", help_text.split("\nexit status:\n", 1)[1], re.M)


def section(page, name):
    """The roff lines of one .SH section."""
    m = re.search(rf"^\.SH {name}\n(.*?)(?=^\.SH |\Z)", page, re.M | re.S)
    return m.group(1) if m else ""


def unescape(roff):
    return re.sub(r"\\f[BIRP]", "", roff).replace("\\-", "-").replace("\\e", "\\")


def entries(sec):
    """The heading line after each .TP, without font changes."""
    return re.findall(r"^\.TP\n(.*)$", sec, re.M)


def page_options(page):
    """The option names of the OPTIONS entries (each heading's words that start with -)."""
    return {w.rstrip(",") for h in entries(section(page, "OPTIONS")) for w in unescape(h).split() if w.startswith("-")}


def mentioned_options(page):
    """Every minivmm option named anywhere in the page (lines of swtpm commands excluded)."""
    text = "\n".join(line for line in unescape(page).splitlines() if not line.startswith("swtpm "))
    return set(re.findall(OPTION_WORD, text))


def differences(help_text, page):
    """What disagrees between --help and the page, as lines (empty: they agree)."""
    problems = []
    in_help, in_page = help_options(help_text), page_options(page)
    problems += [f"{o}: in --help, not in the man page's OPTIONS" for o in sorted(in_help - in_page)]
    problems += [f"{o}: in the man page's OPTIONS, not in --help" for o in sorted(in_page - in_help)]
    # Other programs' options the page names must come from --help's own text (swtpm's, in -tpm-sock's).
    stray = mentioned_options(page) - in_help - set(re.findall(OPTION_WORD, help_text))
    problems += [f"{o}: named in the man page, not an option --help lists" for o in sorted(stray)]
    statuses = [unescape(h) for h in entries(section(page, "EXIT STATUS"))]
    if statuses != help_statuses(help_text):
        problems.append(f"EXIT STATUS lists {statuses}, --help {help_statuses(help_text)}")
    return problems


def main():
    minivmm, manpage = sys.argv[1:3]
    s = suite.Suite()
    help_text = suite.run([minivmm, "--help"]).stdout
    version = suite.run([minivmm, "--version"]).stdout.split()[-1]
    with open(manpage) as f:
        page = f.read()

    # The comparison itself: an option only in --help, and one only in the page, are both found.
    dropped = re.sub(r"^\.TP\n\\fB\\-snapshot\\fR\n.*\n", "", page, flags=re.M)
    added = help_text.replace("\n  -snapshot ", "\n  -frobnicate N          a made-up option\n  -snapshot ", 1)
    s.check("self-check: an OPTIONS entry dropped from the page is found",
            "-snapshot: in --help, not in the man page's OPTIONS" in differences(help_text, dropped))
    s.check("self-check: an option added to --help is found",
            "-frobnicate: in --help, not in the man page's OPTIONS" in differences(added, page))
    s.check("self-check: an example with an option --help lacks is found",
            "-frobnicate: named in the man page, not an option --help lists" in
            differences(help_text, page.replace("\\-snapshot disk.img", "\\-frobnicate disk.img")))
    s.check("self-check: a changed exit status is found",
            any("EXIT STATUS" in p for p in differences(help_text.replace("\n  7      ", "\n  8      "), page)))

    s.check(f"--help lists options ({len(help_options(help_text))}) and exit statuses",
            len(help_options(help_text)) > 20 and "0" in help_statuses(help_text), help_text)
    problems = differences(help_text, page)
    s.check("the man page's OPTIONS, option names and EXIT STATUS agree with --help", not problems, "\n".join(problems))
    s.check(f"the page's header names minivmm {version}", f'"minivmm {version}"' in page.split("\n.SH", 1)[0])
    for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"):
        s.check(f"section {name} present and not empty", section(page, name).strip() != "")
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", manpage], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        s.check("groff -man -Tutf8 -ww: no warnings", r.returncode == 0 and not r.stderr, r.stderr)
    else:
        s.check("groff is installed (scripts/setup installs groff-base)", False)
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
