"""command_args (a TOML table) → llama-server flags, checked against the server's flag table.

With a table (stack/flag_table.py), in TOML order:
- a key names a flag by any spelling (`ctx_size`, `c`, `-c`, `--ctx-size`) or by the environment
  variable it reads (`LLAMA_ARG_CTX_SIZE`); an unknown key, or two keys naming one flag, is an error;
- `true` → the switch (`jinja = true` → --jinja; `no_webui = true` → --no-webui); `true` for a
  flag that takes a value is an error that lists the values the help names;
- `false` → the off form (`jinja = false` → --no-jinja), an error for a switch that has none;
  for a flag that takes a value, false leaves it unset (an extending instance drops an inherited
  `model = …` that way), except where "off" is one of its values (write "off");
- a list → the flag once per item; anything else → flag and value.
Without a table (a service whose entrypoint is not llama-server), the fixed rules of old: keys as
written (`ctx_size` → --ctx-size, `-x` verbatim), true → bare flag, false → omitted."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from airpods.config.keys import agrees_with_airpods, key_parts, owned_flag_error
from airpods.errors import ConfigError
from airpods.stack.flag_table import Flag, FlagTable, builtin_table


def flag_name(key: str) -> str:
    """ctx_size → --ctx-size; keys already starting with '-' pass through verbatim."""
    return key if key.startswith("-") else "--" + key.replace("_", "-")


def _spelling(flag: Flag, negated: bool, key: str) -> str:
    """The spelling to render: the key's own long spelling (or its on/off twin: no_webui = false
    → --webui) when the flag has it, else the first long one."""
    forms = flag.negations if negated else flag.spellings
    longs = [s for s in forms if s.startswith("--")] or list(forms)
    written = key.lstrip("-").replace("_", "-")
    twins = {written, written.removeprefix("no-"), "no-" + written}
    return next((s for s in longs if s[2:] in twins), longs[0])


def _value_hint(flag: Flag) -> str:
    return "|".join(flag.choices) if flag.choices else (flag.value or "a value")


# One flag as rendered: its spelling and its value (None for a switch).
FlagArg = tuple[str, str | None]


def _value_flag_bool(key: str, value: bool, flag: Flag, negated: bool, at: str) -> list[FlagArg]:
    """true/false for a flag that takes a value: true is an error naming the values; false
    renders the off form where there is one, is an error where "off" is one of the values
    (it would silently leave the default), and otherwise leaves the flag unset (how an
    extending instance drops an inherited `model`)."""
    if value:
        example = f'"{flag.choices[0]}"' if flag.choices else "a value"
        raise ConfigError(
            f"{flag.name} takes a value ({_value_hint(flag)}), not true", key=at, hint=f"write {key} = {example}"
        )
    if flag.negations and not negated:
        return [(_spelling(flag, True, key), None)]
    if "off" in flag.choices:
        raise ConfigError(
            f"{flag.name} takes a value ({_value_hint(flag)}), not false", key=at, hint=f'write {key} = "off"'
        )
    return []


def _flag_args(key: str, value: Any, flag: Flag, negated: bool, where: str, table: FlagTable) -> list[FlagArg]:
    """The flags one checked key renders to (see the module docstring); ConfigError otherwise."""
    at = f"{where}.{key}"
    if isinstance(value, bool):
        if flag.value is not None:
            return _value_flag_bool(key, value, flag, negated, at)
        negated = negated != (not value)  # `no_x = false` is x; `x = false` is no-x
        if negated and not flag.negations:
            raise ConfigError(
                f"{flag.name} has no off form in this llama-server",
                key=at,
                hint=f"remove the key to leave the server's default ({table.source})",
            )
        if not negated and not flag.spellings:
            raise ConfigError(f"{flag.name} has no on form", key=at, hint="remove the key")
        return [(_spelling(flag, negated, key), None)]
    if flag.value is None:
        raise ConfigError(f"{_spelling(flag, negated, key)} is a switch: write true or false", key=at)
    spelling = _spelling(flag, negated, key)
    items = value if isinstance(value, list) else [value]
    if flag.value == "N":  # llama-server reads these with std::stoi: a 32-bit int, or it exits
        for item in items:
            _check_integer(spelling, item, at)
    return [(spelling, str(item)) for item in items]


INT_MAX = 2**31 - 1  # std::stoi's int (LP64 and ILP32 alike)
LOWEST = -2  # the sentinels llama-server gives meaning to (-1: auto/all/infinite, -2: until the context fills)


def _check_integer(spelling: str, item: Any, at: str) -> None:
    """A whole number given to an `N` flag must be from LOWEST to INT_MAX (ConfigError
    otherwise, before a container would crash-loop on it)."""
    text = str(item).strip()
    if isinstance(item, bool) or not re.fullmatch(r"-?\d+", text):
        return  # `N` is also a float's placeholder (--temp N): only whole numbers are checked
    number = int(text)
    if not LOWEST <= number <= INT_MAX:
        raise ConfigError(
            f"{spelling} = {number} is out of range: llama-server takes {LOWEST} to {INT_MAX} here "
            "(-1 means auto or unlimited where the flag has such a value)",
            key=at,
        )


def render_command_args(
    args: Mapping[str, Any], table: FlagTable | None = None, where: str = "command_args"
) -> list[str]:
    """The argv `args` render to, checked against `table`: see `command_flags`."""
    return flat(command_flags(args, table, where))


def flat(flags: list[FlagArg]) -> list[str]:
    """Flags as argv: each spelling, then its value when it has one."""
    return [arg for spelling, value in flags for arg in (spelling, value) if arg is not None]


def command_flags(
    args: Mapping[str, Any],
    table: FlagTable | None,
    where: str,
    user_wrote: Callable[[str], bool] | None = None,
    listens_on: int | None = None,
) -> list[FlagArg]:
    """The flags `args` render to, in order, checked against `table` (see the module docstring).

    `where` is the key path of the table (services.NAME.command_args), for errors. Two keys that
    name one flag: when `user_wrote` (a key path → whether the user's file has it) says only one
    of them is the user's, the other (a default, or inherited through extends) gives way;
    otherwise it is an error. A key that leaves its flag unset (`false` on a value flag) names
    nothing. A host or port that agrees with what airpods sets (keys.agrees_with_airpods; the
    server `listens_on` that container port) is accepted and left to airpods to render.
    Raises ConfigError naming `where.KEY` for an unknown key (with a did-you-mean), a
    value the flag cannot take, two keys naming one flag, or a flag airpods sets itself."""
    if table is None:
        return _fixed_rules(args)
    rendered: dict[str, tuple[str, list[FlagArg]]] = {}  # flag name → (key, its flags), in order
    for key, value in args.items():
        found = table.lookup(key)
        if found is None:
            close = table.suggestions(key)
            builtin = table is builtin_table()
            raise ConfigError(
                f"llama-server has no flag {flag_name(key)}",
                key=f"{where}.{key}",
                hint=(f"did you mean {' or '.join(close)}? " if close else "")
                + f"(checked against {table.source}"
                + (
                    ": the image is not pulled yet; if its newer llama-server has this flag, "
                    "`airpods pull` fetches it and its own flags are used)"
                    if builtin
                    else "; `llama-server --help` lists them)"
                ),
            )
        flag, negated = found
        if agrees_with_airpods(flag.name, value, listens_on):
            continue
        owned = owned_flag_error(flag.name, f"{where}.{key}", key_parts(where)[1])
        if owned:
            raise owned
        flags = _flag_args(key, value, flag, negated, where, table)
        if not flags:
            continue  # unset: an inherited value of this flag is dropped, nothing is named
        if flag.name in rendered:
            other = rendered[flag.name][0]
            mine, theirs = (user_wrote(f"{where}.{key}"), user_wrote(f"{where}.{other}")) if user_wrote else (1, 1)
            if mine and not theirs:
                del rendered[flag.name]  # the user's own spelling wins over a default's
            elif theirs and not mine:
                continue
            else:
                raise ConfigError(
                    f"{flag.name} is set twice: here and at {where}.{other}",
                    key=f"{where}.{key}",
                    hint="keep one of the two keys",
                )
        rendered[flag.name] = (key, flags)
    return [f for _, flags in rendered.values() for f in flags]


def check_server_env(env: Mapping[str, str], table: FlagTable, where: str) -> None:
    """llama-server also reads its flags from LLAMA_ARG_… variables (and the key from
    LLAMA_API_KEY): the ones of flags airpods sets itself are refused in a service's env too.
    `where` is the env table's key path. Raises ConfigError."""
    for name in env:
        found = table.lookup(name) if name.startswith("LLAMA_") else None
        owned = found and owned_flag_error(found[0].name, f"{where}.{name}", key_parts(where)[1])
        if owned:
            raise owned


def _fixed_rules(args: Mapping[str, Any]) -> list[FlagArg]:
    flags: list[FlagArg] = []
    for key, value in args.items():
        flag = flag_name(key)
        if value is True:
            flags.append((flag, None))
        elif isinstance(value, list):
            flags += [(flag, str(item)) for item in value]
        elif value is not False and value is not None:
            flags.append((flag, str(value)))
    return flags


def sets_flag(args: Mapping[str, Any], table: FlagTable | None, *names: str) -> bool:
    """Whether `args` sets the flag of any of `names` (spellings such as "n_gpu_layers"), by
    any spelling the table knows (without a table: by key or rendered flag name)."""
    if table is None:
        wanted = {flag_name(n) for n in names}
        return any(flag_name(key) in wanted for key in args)
    flags = {found[0].name for n in names if (found := table.lookup(n))}
    return any((found := table.lookup(key)) is not None and found[0].name in flags for key in args)
