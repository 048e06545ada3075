"""Start Moodsic Live the way `moodsic-live` with no arguments does."""

from moodsic_live.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
