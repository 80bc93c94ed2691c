"""Applications built on tilecast: the thaw-slump job (``rts``) and the well-log digitiser."""
