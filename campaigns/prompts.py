"""Agent prompts: which `${variable}`s a prompt fills from a task's context, and filling them. Pure.

One definition serves the CSV import (which columns a file must supply), the realtime sample
body (which context keys to suggest) and the dial job (the prompt sent with the call), so what an
upload is asked for is exactly what the prompt will use.

>>> prompt_variables("Hi ${name}, about ${ order } ${first name}: ${_sim} ${name}")
['name', 'order']
>>> render_prompt("Hi ${name}, ${_sim}!", {"name": "Ada", "_sim": "[]"})
'Hi Ada, !'
"""
import re

# A name of letters, digits and _, optionally padded with spaces: `${first name}` is text, not a variable.
PROMPT_VARIABLE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
PRIVATE_CONTEXT_PREFIX = "_"  # `_sim` and friends configure the platform, never the prompt


def prompt_variables(prompt):
    """The context variables `prompt` uses, in order of first use, private ones left out."""
    return [name for name in dict.fromkeys(PROMPT_VARIABLE.findall(prompt or ""))
            if not name.startswith(PRIVATE_CONTEXT_PREFIX)]


def render_prompt(template, context):
    """`${var}` → the context's value; a missing or private (`_`-prefixed) variable renders empty."""
    def value(match):
        name = match.group(1)
        if name.startswith(PRIVATE_CONTEXT_PREFIX) or context.get(name) is None:
            return ""
        return str(context[name])

    return PROMPT_VARIABLE.sub(value, template)
