#!/usr/bin/env python3
"""Turn a trace-events file into a header of inline trace_<name>() functions.

Each non-blank, non-comment line is:   name(type arg, type arg) "format"
The header defines one TraceEvent per line, registered at startup by a
constructor, and an inline function that formats and emits the event only
when it is enabled.  Events whose name contains "_err_" are guest errors:
they are counted even when disabled (trace_note_guest_error).
"""
import re
import sys

# The format is C string literals, possibly joined with PRIx64 and friends.
LINE = re.compile(r'^(\w+)\((.*?)\)\s+(".*)$')


def main(src, dst):
    events = []
    with open(src) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            m = LINE.match(line)
            if not m:
                sys.exit(f'{src}:{n}: cannot parse: {line}')
            name, args, fmt = m.groups()
            args = args.strip()
            if args in ('', 'void'):
                params, names = 'void', []
            else:
                params = args
                names = [a.split()[-1].lstrip('*') for a in args.split(',')]
            events.append((name, params, names, fmt))
    guard = 'TRACE_' + re.sub(r'\W', '_', src.upper())
    out = [f'/* generated from {src} by scripts/tracetool.py */',
           f'#ifndef {guard}', f'#define {guard}', '',
           '#include "util/trace.h"', '#include <inttypes.h>', '']
    for name, params, names, fmt in events:
        ev = f'trace_ev_{name}'
        call_args = ''.join(', ' + a for a in names)
        out.append(f'static TraceEvent {ev} '
                   f'__attribute__((unused)) = {{ "{name}", false }};')
        out.append(f'static void __attribute__((constructor, unused)) '
                   f'{ev}_register(void)')
        out.append(f'{{ trace_event_register(&{ev}); }}')
        out.append(f'static inline void trace_{name}({params})')
        out.append('{')
        if '_err_' in name:
            out.append('    if (!trace_note_guest_error()) {')
            out.append('        return;')
            out.append('    }')
        out.append(f'    if (unlikely({ev}.enabled)) {{')
        out.append(f'        trace_emit(&{ev}, {fmt}{call_args});')
        out.append('    }')
        out.append('}')
        out.append('')
    out.append('#endif')
    with open(dst, 'w') as f:
        f.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
