# Reads digits with a trained model, mounted at /models.
FROM python:3.12-slim

WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home app && mkdir /models && chown app:app /models

COPY predict.py .

ENV MODEL_DIR=/models \
    PYTHONUNBUFFERED=1
USER app

ENTRYPOINT ["python", "predict.py"]
