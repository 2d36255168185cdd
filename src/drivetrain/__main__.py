from drivetrain.launcher import main

main()
