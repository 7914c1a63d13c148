"""Carrier providers behind one interface (`base.Provider`), selected by `registry`."""
