"""The baseline: the obvious implementation of this stack, measured in the same run.

FastAPI + uvicorn + SQLAlchemy 2 (sync ORM session per request) + psycopg2. It validates a
pydantic body comparable to a reading and INSERTs one row with add + commit, and GETs a row by
primary key. Painkiller's figures are reported as ratios to these, so a noisy machine cancels out.
"""

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

from fastapi import Depends, FastAPI, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import DateTime, Double, SmallInteger, String, Uuid, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

DATABASE_URL = os.environ.get("BASELINE_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/bench_baseline")


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "readings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    measured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heart_rate_bpm: Mapped[int | None] = mapped_column(SmallInteger)
    spo2_percent: Mapped[int | None] = mapped_column(SmallInteger)
    temperature_c: Mapped[float | None] = mapped_column(Double)
    source: Mapped[str | None] = mapped_column(String(100))


class RowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: uuid.UUID
    measured_at: AwareDatetime | None = None
    heart_rate_bpm: int | None = Field(default=None, ge=0, le=300)
    spo2_percent: int | None = Field(default=None, ge=0, le=100)
    temperature_c: float | None = Field(default=None, ge=10, le=50)
    source: str | None = Field(default=None, max_length=100)


class RowOut(RowIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID


engine = create_engine(DATABASE_URL, pool_size=10, max_overflow=10)
Base.metadata.create_all(engine)  # the baseline is a benchmark fixture, not a service
SessionLocal = sessionmaker(engine)
app = FastAPI()


def get_session() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session


@app.post("/baseline/readings", status_code=201, response_model=RowOut)
def create(data: RowIn, session: Session = Depends(get_session)) -> Row:
    row = Row(**data.model_dump())
    session.add(row)
    session.commit()
    return row


@app.get("/baseline/readings/{row_id}", response_model=RowOut)
def read(row_id: uuid.UUID, session: Session = Depends(get_session)) -> Row:
    row = session.get(Row, row_id)
    if row is None:
        raise HTTPException(404)
    return row
