from stacks.cli import main

raise SystemExit(main())
