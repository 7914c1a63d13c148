"""Running Lua in Redis, one way for every app (slots, dispatch lock, wake-ups, simulator, CPS).

Each script is a file, `<folder>/<name>.lua`, opening with its contract (KEYS, ARGV, Returns).
A line `--- @include NAME` is replaced by `<folder>/NAME.lua`, the way BullMQ shares Lua. A script
set reads its files once, runs them by EVALSHA, and loads them all when Redis answers NOSCRIPT (a
new or restarted server); a pipelined batch refused that way ran nothing, so it is sent again.
"""
import hashlib
import re
from pathlib import Path

from redis.exceptions import NoScriptError

INCLUDE = re.compile(r"^--- @include (\S+)$", re.MULTILINE)


class ScriptSet:
    def __init__(self, folder, names):
        self.folder = Path(folder)
        self.sources = {name: self._expand(name) for name in names}
        self.shas = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in self.sources.items()}

    def _expand(self, name):
        text = (self.folder / f"{name}.lua").read_text()
        return INCLUDE.sub(lambda match: (self.folder / f"{match.group(1)}.lua").read_text(), text)

    def load(self, client):
        for source in self.sources.values():
            client.script_load(source)

    def command(self, name, keys, args=()):
        """The EVALSHA command of one call, for `execute_command` or a pipeline."""
        return ("EVALSHA", self.shas[name], len(keys), *keys, *args)

    def run(self, client, name, keys, args=()):
        command = self.command(name, keys, args)
        try:
            return client.execute_command(*command)
        except NoScriptError:
            self.load(client)
            return client.execute_command(*command)

    def run_many(self, client, commands):
        """Run prepared `command(...)`s in one pipeline; the replies in order."""
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            try:
                return pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
                self.load(client)
