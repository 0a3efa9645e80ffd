"""provd.store: the item catalog, the item store on flash, the secure store, hooks, files."""
