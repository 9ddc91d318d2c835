# The training image: trains the iris classifier and writes model.pkl to /app/artifacts.
FROM python:3.12-slim

WORKDIR /app

# Dependencies first: editing the code later reuses this layer instead of reinstalling.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# Never run as root inside the container.
RUN useradd --create-home app && mkdir -p /app/artifacts && chown app:app /app/artifacts

COPY src/ ./src/

ENV MODEL_DIR=/app/artifacts \
    PYTHONUNBUFFERED=1
USER app

ENTRYPOINT ["python", "src/train.py"]
CMD ["--n-estimators", "100"]
