# Shortcuts for the two commands in the README (make is optional: tasks.py needs only Python).
.PHONY: run test lock
run:
	python3 tasks.py run
test:
	python3 tasks.py test
lock:
	python3 tasks.py lock
