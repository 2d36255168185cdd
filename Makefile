.PHONY: test demo
test:
	scripts/test
demo:
	python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/drivetrain demo
