from moodsic_live.cli import main

raise SystemExit(main())
