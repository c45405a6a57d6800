from acgs_operator.cli import main

raise SystemExit(main())
