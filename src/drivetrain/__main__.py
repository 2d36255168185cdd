from drivetrain.cli import main

main()
