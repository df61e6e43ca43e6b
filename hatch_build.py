"""Hatch build hook: put the pack (skills, resources, templates) inside the wheel.

The pack items are listed once, in trainwright/pack.py. Editable installs skip this: there the
package finds the pack in the checkout itself, so edits show up without reinstalling.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PackBuildHook(BuildHookInterface):
    PLUGIN_NAME = "trainwright-pack"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        sys.path.insert(0, str(root / "scripts"))
        try:
            from trainwright.pack import PACK_ITEMS
        finally:
            sys.path.pop(0)
        for item in PACK_ITEMS:
            if (root / item).exists():
                build_data["force_include"][str(root / item)] = f"trainwright/_pack/{item}"
