"""provd.ui: the PIN prompt on a display and keypad, behind one small interface.

`provd.ui.base` holds the interface (`UiDriver`, `PinPrompt`, the result events, `Key`);
`provd.ui.factory` (`make_driver`, `UiConfig`) chooses a driver: `console`, `evdev`,
`socket`, `scripted`, `none` (see `docs/ui-drivers.md`). Nothing is imported here, so
that the daemon loads a driver only when a PIN is due.
"""
