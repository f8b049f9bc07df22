# The README's commands. `make book` builds the book, `make test` runs every test.
# Both create the virtual environment .venv first if it is missing or out of date.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# notebooks executed headless (book, test, notebooks) store no progress bars in
# notebooks or pages; `make lab` keeps them live
book test notebooks bench: export GENAI_COURSE_PROGRESS := 0
# what the committed notebook outputs were made with, and what nbval reproduces:
# the quick profile on the CPU, two threads, and the CPU kernels of PyTorch, MKL
# and oneDNN held to AVX2, so that any x86-64 machine computes the same bits.
# Written once, in reference-run.env: its KEY=VALUE lines (benchmarks/notebooks.py reads them too)
REFERENCE_RUN := $(shell grep '^[A-Za-z_]' reference-run.env)

.PHONY: book test pdf lab notebooks bench student grade clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

## book: execute the notebooks (cached) and build the HTML book
book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

## test: the package's tests, every notebook under nbval, and the warning-free book build
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests
	$(REFERENCE_RUN) $(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg
	$(BIN)/python scripts/book_config.py _build/test-config.yml
	$(BIN)/jupyter-book build . -W -n --keep-going --config _build/test-config.yml --path-output _build/test
	@echo "All tests passed; the book built from the committed outputs is at _build/test/_build/html/index.html"

## pdf: the PDF edition, built from the committed outputs with XeLaTeX and read back by
## scripts/check_pdf.py; needs TeX Live and poppler (the Debian packages in .ci/pdf-packages)
PDF_TOOLS := xelatex latexmk xindy pdftotext pdfimages pdfinfo
pdf: $(STAMP)
	@for tool in $(PDF_TOOLS); do command -v $$tool >/dev/null || { \
	  echo "make pdf needs $$tool: on Debian or Ubuntu, sudo apt-get install $$(tr '\n' ' ' < .ci/pdf-packages)"; \
	  exit 2; }; done
	$(BIN)/python scripts/book_config.py _build/pdf-config.yml
	$(BIN)/jupyter-book build . --builder pdflatex -W -n --keep-going --config _build/pdf-config.yml --path-output _build/pdf
	$(BIN)/python scripts/check_pdf.py _build/pdf/_build/latex
	@echo "The PDF edition is at _build/pdf/_build/latex/book.pdf"

## lab: JupyterLab in the book's environment
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

## notebooks: re-execute every notebook in a fresh kernel, as committed (quick profile, CPU)
notebooks: $(STAMP)
	$(REFERENCE_RUN) $(BIN)/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

## bench: the training loops against the conventional one, every notebook's time, memory and
## results, written to book/results.md (not part of test); on a GPU: make bench BENCH="--profile full"
bench: $(STAMP)
	$(BIN)/python -m benchmarks.results $(BENCH)

## student: the student edition in student/: solutions replaced by stubs, outputs cleared
student: $(STAMP)
	$(BIN)/python -m genai_course.coursework student notebooks student

## grade: run a submission as nbgrader's autograder would and print its score table, e.g.
## make grade NB=submissions/ada/vae.ipynb [REF=notebooks/vae.ipynb] [TIMEOUT=600]: grade ids, points,
## grading cells and kernel come from the instructor's notebook, REF or else the one in notebooks/
## that shares the submission's grade ids (with neither it refuses); TIMEOUT: seconds a cell may run
grade: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make grade NB=path/to/notebook.ipynb [REF=notebooks/CHAPTER.ipynb] [TIMEOUT=seconds]"; exit 2; }
	$(BIN)/python -m genai_course.coursework grade "$(NB)" $(if $(REF),"$(REF)") $(if $(TIMEOUT),--timeout $(TIMEOUT))

clean:
	rm -rf _build .jupyter_cache
