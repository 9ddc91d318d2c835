# The serving image: the trained model and a small HTTP API in front of it.
# Train first: this copies artifacts/model.pkl into the image, so the image alone serves.
FROM python:3.12-slim

WORKDIR /app

# The same first steps as train.dockerfile, so both images share these layers.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home app && mkdir -p /app/artifacts && chown app:app /app/artifacts

COPY src/ ./src/
COPY artifacts/model.pkl ./artifacts/model.pkl

ENV MODEL_DIR=/app/artifacts \
    PYTHONUNBUFFERED=1
EXPOSE 8080
USER app

CMD ["python", "src/serve.py"]
