"""The classes stage: a class list from ImageNet ids, a class file or an ImageFolder -> ``classes.jsonl``."""
