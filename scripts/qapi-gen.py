#!/usr/bin/env python3
"""Compile the QMP schema (qapi/schema/*.json) for the monitor.

Each schema file is a JSON array of definitions, one of:

  {"section": TITLE, "doc": TEXT}                a heading of docs/qmp.md
  {"enum": NAME, "doc": TEXT, "data": [VALUE, ...]}
  {"struct": NAME, "doc": TEXT, "data": MEMBERS}
  {"command": NAME, "doc": TEXT, "data": MEMBERS, "allow-extra": BOOL,
   "returns": TYPE, "example": EXAMPLE}
  {"event": NAME, "doc": TEXT, "data": MEMBERS, "example": EXAMPLE}

MEMBERS is an object {"name": TYPE, "*optional-name": TYPE, ...}; a member
may also be written {"type": TYPE, "doc": TEXT}.  TYPE is a builtin (str,
int, uint64, size, number, bool, null, any), an enum or struct name, or a
one-element array [TYPE].  EXAMPLE is a transcript: an array of
{"->": message} (sent by the client) and {"<-": message} (sent by the
server); each message is checked against the schema here.

Outputs (any subset):
  --c-schema FILE    C tables of types, commands and events, and the
                     query-qmp-schema text (qapi/schema.h declares them)
  --c-commands FILE  the command handler table (qmp_<name> functions)
  --h-commands FILE  prototypes of the handlers
  --doc FILE         the QMP reference in Markdown

A command or event without its doc or example is reported on stderr (and is
an error with --strict); the test suite fails on it as well.
"""
import argparse
import json
import re
import sys

BUILTINS = {
    # name: (C kind, json-type of query-qmp-schema)
    'str': ('QAPI_KIND_STR', 'string'),
    'int': ('QAPI_KIND_INT', 'int'),
    'uint64': ('QAPI_KIND_UINT64', 'int'),
    'size': ('QAPI_KIND_SIZE', 'int'),
    'number': ('QAPI_KIND_NUMBER', 'number'),
    'bool': ('QAPI_KIND_BOOL', 'boolean'),
    'null': ('QAPI_KIND_NULL', 'null'),
    'any': ('QAPI_KIND_ANY', 'value'),
}
EMPTY = 'empty'
NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*$')

KEYS = {
    'section': {'section', 'doc'},
    'enum': {'enum', 'doc', 'data'},
    'struct': {'struct', 'doc', 'data', 'allow-extra'},
    'command': {'command', 'doc', 'data', 'allow-extra', 'returns',
                'example'},
    'event': {'event', 'doc', 'data', 'example'},
}


class SchemaError(Exception):
    pass


def no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise SchemaError(f"duplicate key '{k}'")
        d[k] = v
    return d


class Type:
    def __init__(self, name, kind, doc='', members=None, values=None,
                 element=None, allow_extra=False, where=''):
        self.name = name
        self.kind = kind            # builtin name, 'enum', 'struct', 'array'
        self.doc = doc
        self.members = members      # [(name, typeexpr, optional, doc)]
        self.values = values
        self.element = element      # Type, for arrays
        self.allow_extra = allow_extra
        self.where = where
        self.index = None


class Schema:
    def __init__(self):
        self.types = {}             # name -> Type
        self.commands = {}          # name -> dict
        self.events = {}
        self.order = []             # (file, definition) for docs
        self.warnings = []
        for b in BUILTINS:
            self.types[b] = Type(b, b)
        self.types[EMPTY] = Type(EMPTY, 'struct', members=[],
                                 doc='No members.')

    # ---- loading ----

    def load(self, path):
        try:
            with open(path, encoding='utf-8') as f:
                defs = json.load(f, object_pairs_hook=no_dups)
        except (OSError, ValueError, SchemaError) as e:
            raise SchemaError(f'{path}: {e}')
        if not isinstance(defs, list):
            raise SchemaError(f'{path}: the file must be a JSON array')
        for i, d in enumerate(defs):
            where = f'{path}: definition {i + 1}'
            if not isinstance(d, dict):
                raise SchemaError(f'{where}: not an object')
            kinds = [k for k in KEYS if k in d]
            if len(kinds) != 1:
                raise SchemaError(f'{where}: needs exactly one of '
                                  f'{", ".join(KEYS)}')
            kind = kinds[0]
            name = d[kind]
            where = f'{path}: {kind} {name}'
            extra = set(d) - KEYS[kind]
            if extra:
                raise SchemaError(f'{where}: unknown key(s) '
                                  f'{", ".join(sorted(extra))}')
            if not isinstance(name, str) or (kind != 'section' and
                                             not NAME_RE.match(name)):
                raise SchemaError(f'{where}: bad name')
            doc = d.get('doc', '')
            if not isinstance(doc, str):
                raise SchemaError(f'{where}: doc must be a string')
            self.order.append((kind, d))
            if kind == 'section':
                continue
            if kind == 'enum':
                self.add_type(Type(name, 'enum', doc,
                                   values=self.enum_values(d, where),
                                   where=where))
            elif kind == 'struct':
                self.add_type(Type(name, 'struct', doc,
                                   members=self.members(d.get('data', {}),
                                                        where),
                                   allow_extra=d.get('allow-extra', False),
                                   where=where))
            elif kind == 'command':
                if name in self.commands:
                    raise SchemaError(f'{where}: defined twice')
                d = dict(d, where=where)
                d['args'] = self.args_type(d, f'{name}-args', where)
                self.commands[name] = d
            else:
                if name in self.events:
                    raise SchemaError(f'{where}: defined twice')
                d = dict(d, where=where)
                d['args'] = (self.args_type(d, f'{name}-data', where)
                             if 'data' in d else None)
                self.events[name] = d

    def add_type(self, t):
        if t.name in self.types:
            raise SchemaError(f'{t.where}: type {t.name} defined twice')
        self.types[t.name] = t

    def enum_values(self, d, where):
        v = d.get('data')
        if (not isinstance(v, list) or not v or
                not all(isinstance(x, str) for x in v) or
                len(set(v)) != len(v)):
            raise SchemaError(f'{where}: data must list distinct strings')
        return v

    def members(self, data, where):
        if not isinstance(data, dict):
            raise SchemaError(f'{where}: data must be an object of members')
        out = []
        for key, spec in data.items():
            opt = key.startswith('*')
            mname = key[1:] if opt else key
            doc = ''
            if isinstance(spec, dict):
                if set(spec) - {'type', 'doc'} or 'type' not in spec:
                    raise SchemaError(f'{where}: member {mname}: use '
                                      '{"type": T, "doc": TEXT}')
                doc = spec.get('doc', '')
                spec = spec['type']
            if not NAME_RE.match(mname):
                raise SchemaError(f'{where}: bad member name {key}')
            out.append((mname, spec, opt, doc))
        return out

    def args_type(self, d, anon, where):
        data = d.get('data')
        if data is None:
            if d.get('allow-extra'):
                raise SchemaError(f'{where}: allow-extra without data')
            return EMPTY
        if isinstance(data, str):
            return data
        owner = d.get('command') or d.get('event')
        self.add_type(Type(anon, 'struct', f'Arguments of {owner}.',
                           members=self.members(data, where),
                           allow_extra=d.get('allow-extra', False),
                           where=where))
        return anon

    # ---- resolving ----

    def resolve(self, expr, where):
        if isinstance(expr, str):
            if expr not in self.types:
                raise SchemaError(f'{where}: unknown type {expr}')
            return self.types[expr]
        if isinstance(expr, list) and len(expr) == 1:
            el = self.resolve(expr[0], where)
            name = f'[{el.name}]'
            if name not in self.types:
                self.types[name] = Type(name, 'array', element=el)
            return self.types[name]
        raise SchemaError(f'{where}: bad type expression {expr!r}')

    def check(self, strict):
        for t in list(self.types.values()):
            if t.kind == 'struct':
                t.members = [(n, self.resolve(e, t.where), o, doc)
                             if not isinstance(e, Type) else (n, e, o, doc)
                             for n, e, o, doc in t.members]
        for kind, table in (('command', self.commands),
                            ('event', self.events)):
            for name, d in table.items():
                where = d['where']
                if d['args'] is not None:
                    a = self.resolve(d['args'], where)
                    if a.kind != 'struct':
                        raise SchemaError(f'{where}: data must be a struct')
                    d['argtype'] = a
                else:
                    d['argtype'] = None
                if kind == 'command':
                    d['rettype'] = (self.resolve(d['returns'], where)
                                    if 'returns' in d else None)
                if not d.get('doc'):
                    self.warnings.append(f'{where}: no doc')
                if not d.get('example'):
                    self.warnings.append(f'{where}: no example')
        for name, d in self.commands.items():
            if d.get('example'):
                self.check_example(d, 'command')
        for name, d in self.events.items():
            if d.get('example'):
                self.check_example(d, 'event')
        if strict and self.warnings:
            raise SchemaError('\n'.join(self.warnings))

    # ---- checking values (examples) against types ----

    def check_value(self, t, v, path):
        k = t.kind
        bad = None
        if k == 'str':
            bad = not isinstance(v, str)
        elif k in ('int', 'uint64', 'size'):
            bad = isinstance(v, bool) or not isinstance(v, int)
            if not bad and k != 'int' and v < 0:
                bad = True
        elif k == 'number':
            bad = isinstance(v, bool) or not isinstance(v, (int, float))
        elif k == 'bool':
            bad = not isinstance(v, bool)
        elif k == 'null':
            bad = v is not None
        elif k == 'any':
            bad = False
        elif k == 'enum':
            bad = v not in t.values
        elif k == 'array':
            if not isinstance(v, list):
                bad = True
            else:
                for i, x in enumerate(v):
                    self.check_value(t.element, x, f'{path}[{i}]')
        elif k == 'struct':
            if not isinstance(v, dict):
                bad = True
            else:
                names = {m[0]: m for m in t.members}
                for key, x in v.items():
                    sub = f'{path}.{key}' if path else key
                    if key in names:
                        self.check_value(names[key][1], x, sub)
                    elif not t.allow_extra:
                        raise SchemaError(f"'{sub}' is not a member of "
                                          f'{t.name}')
                for n, mt, opt, doc in t.members:
                    if not opt and n not in v:
                        sub = f'{path}.{n}' if path else n
                        raise SchemaError(f"'{sub}' is missing")
        if bad:
            raise SchemaError(f"'{path or '(value)'}' is not a {t.name}: "
                              f'{json.dumps(v)}')

    def check_example(self, d, kind):
        name = d[kind]
        where = d['where'] + ': example'
        ex = d['example']
        if not isinstance(ex, list) or not ex:
            raise SchemaError(f'{where}: must be a non-empty array')
        sent = 0
        try:
            for step in ex:
                if (not isinstance(step, dict) or len(step) != 1 or
                        list(step)[0] not in ('->', '<-')):
                    raise SchemaError('each step is {"->": msg} or '
                                      '{"<-": msg}')
                direction, msg = list(step.items())[0]
                if not isinstance(msg, dict):
                    raise SchemaError('a message is an object')
                if direction == '->':
                    if kind != 'command':
                        raise SchemaError('an event example only receives')
                    if msg.get('execute') != name:
                        raise SchemaError(f'the request must execute {name}')
                    if set(msg) - {'execute', 'arguments', 'id'}:
                        raise SchemaError('bad request members')
                    self.check_value(d['argtype'], msg.get('arguments', {}),
                                     '')
                    sent += 1
                elif 'event' in msg:
                    ev = self.events.get(msg['event'])
                    if not ev:
                        raise SchemaError(f"unknown event {msg['event']}")
                    if set(msg) - {'event', 'data', 'timestamp'}:
                        raise SchemaError('bad event members')
                    if ev['argtype'] is not None:
                        self.check_value(ev['argtype'], msg.get('data', {}),
                                         '')
                    elif 'data' in msg:
                        raise SchemaError(f"{msg['event']} has no data")
                elif 'return' in msg:
                    if kind != 'command':
                        raise SchemaError('an event example has no return')
                    rt = d['rettype'] or self.types[EMPTY]
                    self.check_value(rt, msg['return'], '')
                elif 'error' in msg:
                    e = msg['error']
                    if (not isinstance(e, dict) or
                            set(e) != {'class', 'desc'}):
                        raise SchemaError('an error is {class, desc}')
                else:
                    raise SchemaError('a reply is return, error or event')
            if kind == 'command' and sent != 1:
                raise SchemaError('a command example sends one request')
        except SchemaError as e:
            raise SchemaError(f'{where}: {e}')

    # ---- output helpers ----

    def reachable(self):
        """Types used by commands and events, in a stable order."""
        seen = {}

        def visit(t):
            if t.name in seen:
                return
            seen[t.name] = t
            if t.kind == 'struct':
                for _, mt, _, _ in t.members:
                    visit(mt)
            elif t.kind == 'array':
                visit(t.element)
        for n in sorted(self.commands):
            d = self.commands[n]
            visit(d['argtype'])
            if d['rettype']:
                visit(d['rettype'])
        for n in sorted(self.events):
            if self.events[n]['argtype']:
                visit(self.events[n]['argtype'])
        for t in self.types.values():
            visit(t)    # every declared type: iovd-ctl may use any
        return list(seen.values())


def c_str(s):
    """A C string literal (split in pieces of at most ~70 characters)."""
    if s is None:
        return 'NULL'
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '\\':
            out.append('\\\\')
        elif ch == '"':
            out.append('\\"')
        elif ch == '\n':
            out.append('\\n')
        elif 32 <= o < 127:
            out.append(ch)
        else:
            for b in ch.encode('utf-8'):
                out.append(f'\\{b:03o}')
    pieces, cur = [], ''
    for piece in out:
        if len(cur) + len(piece) > 70:
            pieces.append(cur)
            cur = ''
        cur += piece
    pieces.append(cur)
    return '\n    '.join(f'"{p}"' for p in pieces)


def c_ident(name):
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def gen_schema_c(s):
    types = s.reachable()
    for i, t in enumerate(types):
        t.index = i
    out = ['/* Generated by scripts/qapi-gen.py from qapi/schema: '
           'do not edit. */',
           '#include "qapi/schema.h"', '']

    def ref(t):
        return f'&qapi_types[{t.index}]'

    for t in types:
        if t.kind == 'struct' and t.members:
            out.append(f'static const QapiMember qapi_members_{t.index}[] '
                       '= {')
            for n, mt, opt, doc in t.members:
                out.append(f'    {{ {c_str(n)}, {ref(mt)}, '
                           f'{"true" if opt else "false"}, '
                           f'{c_str(doc) if doc else "NULL"} }},')
            out.append('};')
        elif t.kind == 'enum':
            out.append(f'static const char *const qapi_values_{t.index}[]'
                       ' = {')
            for v in t.values:
                out.append(f'    {c_str(v)},')
            out.append('};')
    out.append('')
    out.append('const QapiType qapi_types[] = {')
    for t in types:
        fields = [f'.name = {c_str(t.name)}']
        if t.kind in BUILTINS:
            fields.append(f'.kind = {BUILTINS[t.kind][0]}')
        elif t.kind == 'enum':
            fields += ['.kind = QAPI_KIND_ENUM',
                       f'.values = qapi_values_{t.index}',
                       f'.n_values = {len(t.values)}']
        elif t.kind == 'array':
            fields += ['.kind = QAPI_KIND_ARRAY',
                       f'.element = {ref(t.element)}']
        else:
            fields.append('.kind = QAPI_KIND_STRUCT')
            if t.members:
                fields += [f'.members = qapi_members_{t.index}',
                           f'.n_members = {len(t.members)}']
            if t.allow_extra:
                fields.append('.allow_extra = true')
        out.append(f'    [{t.index}] = {{ ' + ', '.join(fields) + ' },')
    out.append('};')
    out.append(f'const unsigned qapi_n_types = {len(types)};')
    out.append('')

    def example_text(d):
        ex = d.get('example')
        return json.dumps(ex, separators=(',', ':')) if ex else ''

    out.append('const QapiCommandDef qapi_commands[] = {')
    for n in sorted(s.commands):
        d = s.commands[n]
        ret = ref(d['rettype']) if d['rettype'] else 'NULL'
        out.append(f'    {{ .name = {c_str(n)},')
        out.append(f'      .args = {ref(d["argtype"])}, .ret = {ret},')
        out.append(f'      .doc = {c_str(d.get("doc", ""))},')
        out.append(f'      .example = {c_str(example_text(d))} }},')
    out.append('};')
    out.append(f'const unsigned qapi_n_commands = {len(s.commands)};')
    out.append('')
    out.append('const QapiEventDef qapi_events[] = {')
    for n in sorted(s.events):
        d = s.events[n]
        data = ref(d['argtype']) if d['argtype'] else 'NULL'
        out.append(f'    {{ .name = {c_str(n)}, .data = {data},')
        out.append(f'      .doc = {c_str(d.get("doc", ""))},')
        out.append(f'      .example = {c_str(example_text(d))} }},')
    out.append('};')
    out.append(f'const unsigned qapi_n_events = {len(s.events)};')
    out.append('')
    text = json.dumps(introspection(s, types), separators=(',', ':'))
    out.append(f'const char qapi_introspection_json[] =\n    {c_str(text)};')
    return '\n'.join(out) + '\n'


def introspection(s, types):
    info = []
    for n in sorted(s.commands):
        d = s.commands[n]
        info.append({'name': n, 'meta-type': 'command',
                     'arg-type': d['argtype'].name,
                     'ret-type': d['rettype'].name if d['rettype']
                     else EMPTY,
                     'allow-oob': False})
    for n in sorted(s.events):
        d = s.events[n]
        e = {'name': n, 'meta-type': 'event'}
        e['arg-type'] = d['argtype'].name if d['argtype'] else EMPTY
        info.append(e)
    for t in types:
        if t.kind in BUILTINS:
            info.append({'name': t.name, 'meta-type': 'builtin',
                         'json-type': BUILTINS[t.kind][1]})
        elif t.kind == 'enum':
            # QEMU's introspection: 'members' (mandatory since 6.2),
            # 'values' kept for older clients
            info.append({'name': t.name, 'meta-type': 'enum',
                         'members': [{'name': v} for v in t.values],
                         'values': t.values})
        elif t.kind == 'array':
            info.append({'name': t.name, 'meta-type': 'array',
                         'element-type': t.element.name})
        else:
            members = []
            for n, mt, opt, _ in t.members:
                m = {'name': n, 'type': mt.name}
                if opt:
                    m['default'] = None
                members.append(m)
            info.append({'name': t.name, 'meta-type': 'object',
                         'members': members})
    return info


def gen_commands_c(s):
    out = ['/* Generated by scripts/qapi-gen.py from qapi/schema: '
           'do not edit. */',
           '#include "qapi/schema.h"', '#include "qapi/qapi-commands.h"', '',
           '/* Same order as qapi_commands[]. */',
           'const QmpCommand qmp_command_table[] = {']
    for n in sorted(s.commands):
        out.append(f'    {{ {c_str(n)}, qmp_{c_ident(n)} }},')
    out.append('};')
    return '\n'.join(out) + '\n'


def gen_commands_h(s):
    out = ['/* Generated by scripts/qapi-gen.py from qapi/schema: '
           'do not edit. */',
           '#ifndef QAPI_QAPI_COMMANDS_H', '#define QAPI_QAPI_COMMANDS_H', '',
           '#include "qapi/schema.h"', '',
           '/*',
           ' * One handler per command: @args was checked against the '
           'schema;',
           ' * set *@ret (ownership passes) or leave it NULL for {}.',
           ' */']
    for n in sorted(s.commands):
        out.append(f'bool qmp_{c_ident(n)}(json_object *args, '
                   'json_object **ret,')
        out.append(f'{" " * (len(c_ident(n)) + 10)}GError **errp);')
    out += ['', '#endif']
    return '\n'.join(out) + '\n'


# ---- documentation ----

def type_text(t):
    if t.kind == 'array':
        return f'[{type_text(t.element)}]'
    if t.kind in BUILTINS:
        return t.name
    return f'[{t.name}](#{anchor(t.name)})'


def anchor(name):
    return 'type-' + re.sub(r'[^a-z0-9-]', '-', name.lower())


def md_members(t, lines):
    if not t.members:
        lines.append('None.')
        return
    lines.append('| name | type | | description |')
    lines.append('| --- | --- | --- | --- |')
    for n, mt, opt, doc in t.members:
        lines.append(f'| `{n}` | {type_text(mt)} | '
                     f'{"optional" if opt else ""} | {doc} |')
    if t.allow_extra:
        lines.append('| ... | | | other members are passed on (see above) |')


def md_example(ex, lines):
    lines.append('```')
    for step in ex:
        direction, msg = list(step.items())[0]
        lines.append(f'{direction} {json.dumps(msg)}')
    lines.append('```')


def gen_doc(s):
    lines = ['# QMP reference', '',
             'Generated from `qapi/schema/*.json` by `scripts/qapi-gen.py`. '
             'iovd speaks QMP as QEMU specifies it (docs/interop/'
             'qmp-spec.rst): a greeting, `qmp_capabilities`, then '
             'commands and events, one JSON object per line, each line '
             'ending in CRLF. `->` marks what the client sends, `<-` '
             'what iovd answers.', '',
             '**Commands**: ' + ', '.join(
                 f'[{n}](#{n.lower()})' for n in sorted(s.commands)), '',
             '**Events**: ' + ', '.join(
                 f'[{n}](#event-{n.lower()})'
                 for n in sorted(s.events)), '']
    types_used = []
    for kind, d in s.order:
        if kind == 'section':
            lines += [f'## {d["section"]}', '', d.get('doc', ''), '']
        elif kind == 'command':
            c = s.commands[d['command']]
            lines += [f'### {d["command"]}', '', c.get('doc', '') or
                      '**Undocumented.**', '', '**Arguments**', '']
            md_members(c['argtype'], lines)
            lines += ['', '**Returns**: ' +
                      (type_text(c['rettype']) if c['rettype'] else '`{}`'),
                      '']
            if c.get('example'):
                lines += ['**Example**', '']
                md_example(c['example'], lines)
                lines.append('')
        elif kind == 'event':
            e = s.events[d['event']]
            lines += [f'### Event {d["event"]}', '', e.get('doc', '') or
                      '**Undocumented.**', '', '**Data**', '']
            if e['argtype']:
                md_members(e['argtype'], lines)
            else:
                lines.append('None.')
            lines.append('')
            if e.get('example'):
                lines += ['**Example**', '']
                md_example(e['example'], lines)
                lines.append('')
        else:
            types_used.append(s.types[d[kind]])
    lines += ['## Types', '']
    for t in types_used:
        lines += [f'### <a id="{anchor(t.name)}"></a>{t.name}', '',
                  t.doc, '']
        if t.kind == 'enum':
            lines.append('One of: ' + ', '.join(f'`{v}`' for v in t.values))
        else:
            md_members(t, lines)
        lines.append('')
    return '\n'.join(lines) + '\n'


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('schema', nargs='+')
    ap.add_argument('--c-schema')
    ap.add_argument('--c-commands')
    ap.add_argument('--h-commands')
    ap.add_argument('--doc')
    ap.add_argument('--strict', action='store_true',
                    help='a missing doc or example is an error')
    args = ap.parse_args()
    s = Schema()
    try:
        for path in args.schema:
            s.load(path)
        s.check(args.strict)
    except SchemaError as e:
        sys.exit(f'qapi-gen: {e}')
    for w in s.warnings:
        print(f'qapi-gen: warning: {w}', file=sys.stderr)
    if args.c_schema:
        write(args.c_schema, gen_schema_c(s))
    if args.c_commands:
        write(args.c_commands, gen_commands_c(s))
    if args.h_commands:
        write(args.h_commands, gen_commands_h(s))
    if args.doc:
        write(args.doc, gen_doc(s))


if __name__ == '__main__':
    main()
