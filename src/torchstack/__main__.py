from torchstack.cli import main

raise SystemExit(main())
