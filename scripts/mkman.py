#!/usr/bin/env python3
"""Write a man page (roff) for iovd or iovd-ctl from the program's own
--help text, so that the two never disagree:

    mkman.py PROGRAM SECTION-FILE OUT VERSION

PROGRAM is the built binary; SECTION-FILE (docs/man/NAME.in) holds the
parts --help does not say (description, signals, files, examples) as
'.SH' sections in roff, with @VERSION@ and @OPTIONS@ placeholders."""
import re
import subprocess
import sys


def roff_escape(text):
    text = text.replace('\\', '\\e')
    return '\n'.join(('\\&' + ln if ln.startswith(('.', "'")) else ln)
                     for ln in text.split('\n'))


def options_roff(help_text):
    """The option lines of --help ('  -opt ...  what') as .TP entries; the
    continuation lines (deeper indentation) join the entry before."""
    out = []
    entry = None
    in_opts = False
    for line in help_text.split('\n'):
        if re.match(r'^(Options|Commands):', line):
            in_opts = True
            continue
        if not in_opts:
            continue
        m = re.match(r'^  (-\S.*?)(?:\s{2,}(\S.*))?$', line)
        if m:
            entry = [m.group(1), m.group(2) or '']
            out.append(entry)
        elif line.startswith('   ') and entry is not None:
            entry[1] = (entry[1] + ' ' + line.strip()).strip()
        elif not line.strip():
            entry = None
        else:
            in_opts = False
    roff = []
    for opt, what in out:
        roff += ['.TP', '.B ' + roff_escape(opt), roff_escape(what)]
    return '\n'.join(roff)


def main():
    prog, section_file, out, version = sys.argv[1:5]
    help_text = subprocess.run([prog, '--help'], check=True,
                               capture_output=True, text=True).stdout
    with open(section_file) as f:
        page = f.read()
    page = page.replace('@VERSION@', version)
    page = page.replace('@OPTIONS@', options_roff(help_text))
    with open(out, 'w') as f:
        f.write(page)


if __name__ == '__main__':
    main()
