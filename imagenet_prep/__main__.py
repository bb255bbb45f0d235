from imagenet_prep.cli import main

main()
